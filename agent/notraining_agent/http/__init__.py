"""The HTTP surface Saturno calls: the receiver, its server, auth, the OpenAPI document."""
