"""What platform teams' tools make of the rendered chart: checkov's findings on every object and role pod,
and the connectivity the NetworkPolicies allow (network-config-analyzer)."""
