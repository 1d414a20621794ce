"""Gates: named rules that read evidence, change nothing, and answer GO or NO-GO."""
