//! Dependency graph of a compose project: start levels, reverse deps, cycles.
