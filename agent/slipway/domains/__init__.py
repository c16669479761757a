"""Custom domains: association rules, names, and the DNS and TLS checks."""
