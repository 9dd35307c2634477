"""The daemon's place in the system: control socket, devices, doctor, autostart."""
