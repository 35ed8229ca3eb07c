"""fourdlib.repro"""
