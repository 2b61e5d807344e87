using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace Mae.MLNet.Input;

/// <summary>
/// Turns one encoded image into one model input [C, S, S] float32, with buffers reused across images (one sampler per
/// worker thread). Training: torchvision's <c>RandomResizedCrop(S, scale, ratio, bicubic)</c> on the image at its
/// original resolution, <c>RandomHorizontalFlip</c>, <c>ToTensor</c>, <c>Normalize</c>, the randomness from
/// (seed, epoch, image index). Evaluation: <c>Resize(int(S / crop_pct), bicubic)</c> + <c>CenterCrop(S)</c>, as the
/// reference's evaluation transform. The header is checked against the limits before any pixel is decoded.
/// </summary>
internal sealed unsafe class ImageSampler
{
    readonly MaeImageInputOptions options;
    readonly MaeAugmentationOptions aug;
    readonly int size, channels;
    readonly PostCropAugmentation post; // RandAugment, ToTensor + Normalize, random erasing
    readonly double[] u;
    byte[] file = new byte[64 << 10];
    byte[] pixels = Array.Empty<byte>(), grey = Array.Empty<byte>(), upright = Array.Empty<byte>(), temp = Array.Empty<byte>(), resized = Array.Empty<byte>();

    public ImageSampler(MaeImageInputOptions options)
    {
        this.options = options;
        aug = options.Augmentation;
        size = aug.OutputSize;
        channels = aug.Channels;
        post = new PostCropAugmentation(aug);
        // The crop's uniforms first, so turning RandAugment or erasing on leaves every crop as it was.
        u = new double[RandomResizedCropSampler.DrawsPerSample + PostCropAugmentation.Draws(aug)];
    }

    static byte* Pointer(byte[] a) => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));

    /// <summary>A pinned buffer of at least <paramref name="length"/> bytes (kept for the next image).</summary>
    static byte* Buffer(ref byte[] buffer, long length)
    {
        if (buffer.Length < length) buffer = GC.AllocateUninitializedArray<byte>(checked((int)length), pinned: true);
        return Pointer(buffer);
    }

    /// <summary>Writes image <paramref name="index"/> of <paramref name="images"/> to <paramref name="dst"/>
    /// (C·S·S floats). <paramref name="key"/> names the randomness (the image index of the epoch's position).</summary>
    public void Produce(EncodedImageList images, long index, bool training, long seed, int epoch, long key, float* dst)
        => Produce(images, index, training, seed, epoch, key, null, false, dst);

    /// <summary>Training transform with a given crop box and flip (tests compare it with torchvision's output).</summary>
    internal void ProduceCrop(EncodedImageList images, long index, CropBox box, bool flip, float* dst)
        => Produce(images, index, true, 0, 0, 0, box, flip, dst);

    /// <summary>Every failure while an image is read or decoded is a <see cref="MaeImageFileException"/> naming it —
    /// also the unexpected ones (a decoder or an allocation that fails on a hostile header) — so the caller can report
    /// or skip it (<see cref="MaeImageInputOptions.SkipBadFiles"/>) and a decode worker never dies of one.</summary>
    void Produce(EncodedImageList images, long index, bool training, long seed, int epoch, long key, CropBox? givenBox, bool givenFlip, float* dst)
    {
        try { Decode(images, index, training, seed, epoch, key, givenBox, givenFlip, dst); }
        catch (Exception e) when (e is not MaeImageFileException)
        {
            throw new MaeImageFileException(images.Name(index), $"it could not be decoded ({e.GetType().Name}: {e.Message}).", e);
        }
    }

    void Decode(EncodedImageList images, long index, bool training, long seed, int epoch, long key, CropBox? givenBox, bool givenFlip, float* dst)
    {
        int length = images.Read(index, ref file, options.MaxFileBytes);
        SKCodec? codec;
        fixed (byte* f = file)
        {
            using var data = SKData.CreateCopy((IntPtr)f, (ulong)length);
            codec = SKCodec.Create(data);
        }
        if (codec is null)
            throw new MaeImageFileException(images.Name(index),
                "not an image SkiaSharp can decode (expected JPEG, PNG, BMP, GIF, WebP or ICO), or its header is damaged.");
        using (codec) Produce(codec, images, index, training, seed, epoch, key, givenBox, givenFlip, dst);
    }

    void Produce(SKCodec codec, EncodedImageList images, long index, bool training, long seed, int epoch, long key, CropBox? givenBox, bool givenFlip, float* dst)
    {
        var info = codec.Info;
        int w = info.Width, h = info.Height;
        if (w < 1 || h < 1) throw new MaeImageFileException(images.Name(index), $"the header declares {w}×{h} pixels.");
        if ((long)w * h > options.MaxPixels)
            throw new MaeImageFileException(images.Name(index),
                $"the image is {w}×{h} = {(long)w * h} pixels, above the MaxPixels limit of {options.MaxPixels} (checked before decoding); raise MaeImageInputOptions.MaxPixels to accept it.");
        var origin = options.ApplyExifOrientation ? codec.EncodedOrigin : SKEncodedOrigin.TopLeft;
        bool swap = ImageOrientation.SwapsAxes(origin);
        int uw = swap ? h : w, uh = swap ? w : h; // upright size

        // Geometry in the upright image: a box, the size of the grid it is resampled to, the window of that grid kept.
        // The grid is long: the evaluation resize of an image of extreme aspect ratio is far longer than an int, and
        // only its centre window is ever computed (PilAxis.Compute with a window).
        CropBox box;
        long gridW, gridH, winX = 0, winY = 0;
        bool flip = false;
        if (givenBox is { } given)
        {
            box = given;
            flip = givenFlip;
            gridW = gridH = size;
        }
        else if (training)
        {
            MaePlanRandom.Uniforms(seed, epoch, key, u);
            box = aug.RandomResizedCrop
                ? RandomResizedCropSampler.FromUniforms(uh, uw, aug.ScaleMin, aug.ScaleMax, aug.RatioMin, aug.RatioMax, u)
                : CropBox.Full(uh, uw);
            flip = u[RandomResizedCropSampler.DrawsPerSample - 1] < aug.HorizontalFlipProbability;
            gridW = gridH = size;
        }
        else
        {
            // torchvision Resize(r): the shorter side becomes r, the longer int(r · long / short); CenterCrop(S).
            int r = MaeImageInputOptions.EvalResizeSize(size);
            if (uw <= uh) { gridW = r; gridH = (long)(r * (double)uh / uw); }
            else { gridH = r; gridW = (long)(r * (double)uw / uh); }
            box = CropBox.Full(uh, uw);
            winX = MaeImageInputOptions.CenterCropOffset(gridW, size);
            winY = MaeImageInputOptions.CenterCropOffset(gridH, size);
        }

        // libjpeg's DCT scaling: decode at 1/r when the box stays at least the grid size in both directions.
        int dw = w, dh = h;
        if (options.ScaledJpegDecode && codec.EncodedFormat == SKEncodedImageFormat.Jpeg)
            foreach (int r in stackalloc[] { 8, 4, 2 })
            {
                if (box.Width / r < gridW || box.Height / r < gridH) continue;
                var d = codec.GetScaledDimensions(1f / r);
                if (d.Width >= 1 && d.Height >= 1 && d.Width < w) { dw = d.Width; dh = d.Height; }
                break;
            }

        int pb = channels == 3 ? 4 : 1;
        int iw = swap ? dh : dw, ih = swap ? dw : dh; // upright size as decoded

        // The box in decoded pixels (fractional after a scaled decode); its taps stay inside the box, as torchvision
        // crops before it resizes.
        double fx = iw / (double)uw, fy = ih / (double)uh;
        var (xs, x0, xn) = Axis(box.Left * fx, (box.Left + box.Width) * fx, iw, gridW, winX, size);
        var (ys, y0, yn) = Axis(box.Top * fy, (box.Top + box.Height) * fy, ih, gridH, winY, size);

        // SkiaSharp decodes only grey sources to Gray8 (a colour file fails with InvalidConversion): a colour file for a
        // grey model is decoded as RGBA and turned into PIL's luma, as Image.convert("L") does.
        bool luma = channels == 1 && info.ColorType != SKColorType.Gray8;
        var decodeInfo = new SKImageInfo(dw, dh, channels == 3 || luma ? SKColorType.Rgba8888 : SKColorType.Gray8, SKAlphaType.Unpremul);
        byte* img;
        int stride;
        // A margin of one MCU (16 px) around the region keeps libjpeg's edge handling (chroma upsampling at the
        // region's border) outside the pixels used, so they equal a full decode's.
        int rx0 = Math.Max(x0 - RegionMargin, 0), ry0 = Math.Max(y0 - RegionMargin, 0);
        int rxn = Math.Min(x0 + xn + RegionMargin, dw) - rx0, ryn = Math.Min(y0 + yn + RegionMargin, dh) - ry0;
        if (!luma && origin == SKEncodedOrigin.TopLeft && UseRegionDecode && codec.EncodedFormat == SKEncodedImageFormat.Jpeg
            && (long)rxn * ryn < (long)dw * dh * 3 / 4 && DecodeRegion(codec, decodeInfo, rx0, ry0, rxn, ryn, pb, images, index, w, h))
        {
            stride = rxn * pb;
            img = Pointer(pixels) + (long)(y0 - ry0) * stride + (x0 - rx0) * pb;
        }
        else
        {
            byte* px = Buffer(ref pixels, (long)dw * dh * (luma ? 4 : pb));
            var result = codec.GetPixels(decodeInfo, (IntPtr)px);
            if (result != SKCodecResult.Success)
                throw new MaeImageFileException(images.Name(index), Describe(result, w, h));
            if (luma) px = Luma(px, Buffer(ref grey, (long)dw * dh), (long)dw * dh);
            img = px;
            if (origin != SKEncodedOrigin.TopLeft)
            {
                img = Buffer(ref upright, (long)dw * dh * pb);
                ImageOrientation.Apply(origin, px, dw, dh, pb, img);
            }
            img += ((long)y0 * iw + x0) * pb;
            stride = iw * pb;
        }
        byte* tmp = Buffer(ref temp, PilResample.TempBytes(xs, ys, pb));
        byte* outBytes = Buffer(ref resized, (long)size * size * pb);
        PilResample.Resample(img, stride, pb, xs, ys, flip, tmp, outBytes);
        post.Apply(new ByteImage(outBytes, size, size, pb, channels), training && givenBox is null,
            u.AsSpan(RandomResizedCropSampler.DrawsPerSample), dst);
    }

    /// <summary>PIL's RGB → L conversion (ITU-R 601-2 luma, L = R·299/1000 + G·587/1000 + B·114/1000 in PIL's 16-bit
    /// fixed point, rounded); alpha is ignored, as PIL ignores it. Returns <paramref name="dst"/>.</summary>
    static byte* Luma(byte* rgba, byte* dst, long n)
    {
        for (long i = 0; i < n; i++, rgba += 4)
            dst[i] = (byte)((rgba[0] * 19595 + rgba[1] * 38470 + rgba[2] * 7471 + 0x8000) >> 16);
        return dst;
    }

    /// <summary>Taps for the span [a, b) of an axis of <paramref name="n"/> pixels, restricted to the whole pixels it
    /// touches; returns them and the first pixel (the offset to add when reading).</summary>
    static (PilAxis Axis, int First, int Length) Axis(double a, double b, int n, long outSize, long start, int length)
    {
        int lo = Math.Clamp((int)Math.Floor(a), 0, n - 1);
        int hi = Math.Clamp((int)Math.Ceiling(b), lo + 1, n);
        return (PilAxis.Compute(Math.Max(a - lo, 0), Math.Min(b - lo, hi - lo), hi - lo, outSize, start, length), lo, hi - lo);
    }

    /// <summary>Decodes only the crop's columns [x0, x0 + xn) and rows [y0, y0 + yn) into <see cref="pixels"/> (rows of
    /// xn pixels): libjpeg-turbo's <c>jpeg_crop_scanline</c> (through the codec's x subset) and
    /// <c>jpeg_skip_scanlines</c> skip the inverse DCT, upsampling and colour conversion of what the crop leaves out;
    /// rows below it are never read. False when the codec declines (the caller decodes the whole image).</summary>
    bool DecodeRegion(SKCodec codec, SKImageInfo info, int x0, int y0, int xn, int yn, int pb, EncodedImageList images, long index, int w, int h)
    {
        var start = codec.StartScanlineDecode(info, new SKCodecOptions(new SKRectI(x0, 0, x0 + xn, info.Height)));
        if (start != SKCodecResult.Success) return false;
        byte* px = Buffer(ref pixels, (long)xn * yn * pb);
        if (y0 > 0 && !codec.SkipScanlines(y0))
            throw new MaeImageFileException(images.Name(index), Describe(SKCodecResult.IncompleteInput, w, h));
        int rows = codec.GetScanlines((IntPtr)px, yn, xn * pb);
        if (rows != yn) throw new MaeImageFileException(images.Name(index), Describe(SKCodecResult.IncompleteInput, w, h));
        return true;
    }

    /// <summary>Decode only the crop region of JPEGs (default); tests switch it off to compare with a full decode.</summary>
    internal bool UseRegionDecode { get; set; } = true;
    internal int RegionMargin { get; set; } = 16;

    static string Describe(SKCodecResult result, int w, int h) => result switch
    {
        SKCodecResult.IncompleteInput => $"the {w}×{h} image data ends early (a truncated file).",
        SKCodecResult.ErrorInInput => $"the {w}×{h} image data is corrupt.",
        SKCodecResult.InvalidInput => $"the {w}×{h} image data is invalid.",
        _ => $"SkiaSharp could not decode the {w}×{h} image ({result}).",
    };
}
