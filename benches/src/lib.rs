//! Shared fixtures of the criterion benches in `benches/` (see the README there).
