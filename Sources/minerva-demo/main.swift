print("minerva-demo: not yet")
