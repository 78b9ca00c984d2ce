"""The channels the core reaches people through, each rendering and delivering what it planned."""
