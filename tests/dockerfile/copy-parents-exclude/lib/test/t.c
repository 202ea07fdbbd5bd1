t.c
