"""fourdlib.train"""
