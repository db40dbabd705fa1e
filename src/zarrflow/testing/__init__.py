"""Test tooling for zarrflow and its users: fault injection, proxies and servers."""
