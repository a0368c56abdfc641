//! `GET /api/v1/types`, `/models`, `/workflows`.
