//! Bringing a session's best result into the branch it started from (issue 4; placeholder).
