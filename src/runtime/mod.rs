//! Container lifecycle over a state directory: what happens when.
