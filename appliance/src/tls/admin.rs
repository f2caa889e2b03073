//! TLS in front of the admin port (to come).
