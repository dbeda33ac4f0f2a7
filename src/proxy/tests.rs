//! Unit tests of proxy resolution and calls against a local backend.
