"""The diffusion method itself: noise schedule, simplex noise, condition encoder, conditional UNet, the stage-2
model, and the stage-1 masked-image-modelling objective with its losses."""
