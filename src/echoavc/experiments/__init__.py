"""The paper's experiment protocols (Tables 1-4), reproduced under its protocol and a leakage-free one."""
