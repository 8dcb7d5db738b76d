"""The kit's HTTP layer: what every REST tap and push target needs from a remote API."""
