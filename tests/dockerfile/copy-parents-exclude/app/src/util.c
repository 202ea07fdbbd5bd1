util.c
