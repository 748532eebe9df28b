# No provider on purpose: this module is pure computation (validation, the agent's
# metadata, the rendered user-data), so `terraform init` and `terraform test` run offline.
terraform {
  # 1.9: validation conditions may refer to other variables.
  required_version = ">= 1.9"
}
