"""The kit's HTTP layer: what every REST tap and push target needs from a remote API.

``classify`` (one verdict per exchange), ``client`` (the one retrier, re-auth, rate limit),
``auth`` (static keys, OAuth-style tokens renewed early), ``paging`` (keyset, cursor and
page-number paginators with loop detection), ``ratelimit`` and ``errors``; docs/kit/http.md.
"""
