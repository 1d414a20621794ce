# post_save handlers
