"""Training stages: SFT warm-up, GRPO (through TRL), PPO and PCGrad (rlpipe's own), and their maths."""
