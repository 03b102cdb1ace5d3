#define IT_VERSION "0.1.0"
