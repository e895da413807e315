//! Placeholder: the hot-restart state machine lands here.
