"""fourdlib.viz"""
