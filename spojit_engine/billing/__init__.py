"""Buying credits: top-up packs through Stripe Checkout, the Stripe webhook, refunds and
disputes. See README.md."""
