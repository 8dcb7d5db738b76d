"""tap-billetten: Billetten ticket buyers, their permissions, seats, cancellations and tracking."""
