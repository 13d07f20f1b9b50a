// VAE decoding in overlapping tiles, so a large image never holds full-resolution activations of
// the whole picture: at 1024×1024 an untiled decode keeps several [128][1024][1024] f32 tensors
// (0.5 GiB each); a 32×32-latent tile keeps them at 256×256.
// Tiles of `tile` latent pixels start every tile-overlap pixels (the last one aligned to the
// edge); each is decoded on its own (GroupNorm statistics are then per tile, as in the
// reference's tiled decode) and blended with weights that ramp linearly over 8·overlap image
// pixels from each edge shared with a neighbour (1 elsewhere), normalised by the weight sum.
#pragma once
#include <vector>

#include "diffusion/vae.h"

namespace duan::diffusion {

struct VaeTiling {
    int tile = 32;    // latent pixels per tile side
    int overlap = 8;  // latent pixels shared by neighbouring tiles
};

// z: [4][h][w] already divided by the scale factor; returns [3][8h][8w]. With tile >= h and w
// this is exactly VaeDecoder::decode.
std::vector<float> vae_decode_tiled(ThreadPool& pool, const VaeDecoder& vae,
                                    const std::vector<float>& z, int h, int w,
                                    const VaeTiling& t = {});

// Above this latent area (64×64 latent = 512×512 image) the pipeline decodes in tiles.
constexpr int kVaeTileAboveLatentArea = 64 * 64;

}  // namespace duan::diffusion
