"""fourdlib.models"""
