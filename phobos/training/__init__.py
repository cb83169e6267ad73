"""Training: RLlib multi-agent PPO and Stable-Baselines3 with Ray Tune (see the training issue)."""
