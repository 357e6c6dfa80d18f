"""DR drills: rehearse a recovery scenario in another region, measure RTO and RPO, tear down."""
