"""App Runner's VPC resources on one host: VPC connectors name Docker networks that a
service's instances join (``connectors.py``), VPC ingress connections name where a
private service answers, on the private listener (``ingress.py``). ``network.py`` is a
service's NetworkConfiguration as a record; ``limits.py`` the settings of both."""
