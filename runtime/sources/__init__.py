"""Sources of live 12-lead ECG: each yields Chunk / StreamEnd events (see base.py)."""
