## tools/traj-extract (rules added with the tool)
