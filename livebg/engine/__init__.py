"""The live daemon's threads (capture, net, matte, output) and what they hand each other."""
