"""Local stand-ins for the outside parties Sésame talks to (demo and tests only;
never deployed): ``sandbox.itsme``, an OpenID Connect provider speaking
itsme's profile on localhost."""
