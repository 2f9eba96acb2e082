//! In-process FROST keys for tests.
