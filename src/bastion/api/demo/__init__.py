"""A demo shop on the API's origin: a checkout page that frames the vault's card fields, and
the shop's own server side, which turns the token into a payment method with its secret key."""
