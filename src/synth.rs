//! Synthetic captures for tests, fixtures and benchmarks: a small pcap writer and a TCP
//! conversation simulator (both endpoints' sequence state, one-way delay, capture vantage point).
