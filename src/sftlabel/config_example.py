"""The commented example config file that ``sftlabel init`` writes (and docs/configuration.md
shows); a test checks that it loads."""

EXAMPLE_CONFIG = """\
# sftlabel.toml: found in the working directory or its nearest parent that has one (then
# ~/.config/sftlabel/config.toml); `--config FILE` or SFTLABEL_CONFIG name another one.
# Precedence: command-line flag > environment variable > this file > built-in default.
# `sftlabel info` shows every effective value and where it came from.

# Settings for every command
# model = "deepseek-v3.2"
# base_url = "https://api.deepseek.com/v1"      # or LITELLM_BASE / SFTLABEL_BASE_URL
# api_key = "..."                               # better: SFTLABEL_API_KEY / LITELLM_KEY
# taxonomy = "./my-taxonomy"                    # relative paths are relative to this file
# cache_dir = "./.sftlabel-cache"

# Defaults of `sftlabel label` (a flag given on the command line wins)
[label]
# inputs = ["./data"]                           # what `sftlabel label` labels without PATH
# output_root = "./runs"                        # new runs go to <output_root>/<time>_<model>
# model = "deepseek-v3.2"                       # this command's model (over the one above)
# concurrency = 50
# rpm = 3000
# max_cost = 20.0                               # USD, a hard cap for each run
# arbitration = true
# json_mode = "auto"

# Defaults of `sftlabel softlabel` (the soft-label job, as the old pipeline ran it)
[softlabel]
# input = "az://container/RAW_dataset"          # or a local RAW dataset folder
# output = "az://container/LABELED_RAW_dataset" # default: LABELED_<dataset> beside the input
# model = "gpt-4o-mini"
# azure_endpoint = "https://<resource>.openai.azure.com"
# azure_deployment = "gpt-4o-mini"
# keyvault = "my-vault"                         # the API key is read from this secret
# secret = "openai-api-key"
# strategy = "user_message_only"
# rationales = false
# concurrency = 50

# Profiles: model tiers, selected with `--profile NAME` on label, softlabel and arbitrate.
# Precedence: flag > profile > environment variable > the command's table > the settings above.
# Keys: description, model, base_url, azure_endpoint, azure_deployment, api_version,
# api_key_env (the variable holding the key), keyvault, secret, prices, concurrency, rpm, tpm,
# timeout, max_cost, arbitration_model. The tiers of the old system:

# [profiles.gold]                               # strong model for gold annotation
# description = "gold annotation: the strongest model, slow and careful"
# model = "claude-sonnet-4"
# base_url = "https://litellm.example.com/v1"
# api_key_env = "LITELLM_GOLD_KEY"
# concurrency = 8
# rpm = 120
# arbitration_model = "claude-opus-4"
# prices = "./prices.toml"

# [profiles.production]                         # mid model for production labeling
# model = "deepseek-v3.2"
# base_url = "https://api.deepseek.com/v1"
# api_key_env = "DEEPSEEK_API_KEY"
# concurrency = 50
# rpm = 3000
# tpm = 5000000
# arbitration_model = "claude-sonnet-4"
# max_cost = 50.0

# [profiles.cheap]                              # light model for cost-sensitive batches
# model = "gpt-4o-mini"
# azure_endpoint = "https://<resource>.openai.azure.com"
# azure_deployment = "gpt-4o-mini"
# keyvault = "my-vault"
# secret = "openai-api-key"
# concurrency = 100
# arbitration_model = "deepseek-v3.2"
# max_cost = 5.0
"""
