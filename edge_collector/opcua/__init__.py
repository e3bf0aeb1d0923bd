"""The collector's OPC UA side beyond asyncua's public API: `asyncua_compat.py` (every private
asyncua API the collector relies on, and the start-up check that it still exists),
`message_limits.py` (bounded messages from a rogue server), `server_identity.py` (the pinned
server certificate and what the endpoint presents), `certificates.py` (validity pre-flight).
"""
