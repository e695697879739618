"""The student's text contract with the TypeScript runtime and the datasets the prototype stage writes."""
