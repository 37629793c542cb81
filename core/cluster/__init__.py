"""Cluster: k-means sweeps with elbow and silhouette diagnostics, cluster labels, and the 2-D map."""
