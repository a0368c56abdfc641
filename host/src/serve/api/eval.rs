//! `POST /api/v1/eval`.
