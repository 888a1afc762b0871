//! Signing (tests, demos, benchmarks): placeholder filled next.
