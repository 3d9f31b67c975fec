//! The PostgreSQL backend against a live server (see `tests/support`).

mod schema;
