"""Cloud providers behind one interface (server groups, load balancers, images)."""
