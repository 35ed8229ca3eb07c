"""fourdlib.metrics"""
