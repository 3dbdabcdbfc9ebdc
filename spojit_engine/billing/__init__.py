"""Plans, top-up packs and (later) Stripe Checkout. See README.md."""
