"""fourdlib.render"""
