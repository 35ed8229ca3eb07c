"""fourdlib.nn"""
