package sparkasr.audio

import java.io.{File, RandomAccessFile}
import java.nio.ByteOrder
import java.util.concurrent.ConcurrentHashMap

import scala.collection.mutable.ArrayBuffer

import org.bytedeco.ffmpeg.avcodec.{AVCodecContext, AVPacket}
import org.bytedeco.ffmpeg.avformat.{AVFormatContext, AVIOContext, Read_packet_Pointer_BytePointer_int, Seek_Pointer_long_int}
import org.bytedeco.ffmpeg.avutil.{AVDictionary, AVFrame}
import org.bytedeco.ffmpeg.global.avcodec._
import org.bytedeco.ffmpeg.global.avformat._
import org.bytedeco.ffmpeg.global.avutil._
import org.bytedeco.javacpp.{BytePointer, Pointer}
import sparkasr.Constants.SampleRate

/** Decode any audio FFmpeg reads (WAV/RF64, FLAC, OGG Vorbis/Opus, MP3, AIFF, M4A/AAC, WebM, ...)
  * into 16 kHz mono float32, from a local path or from encoded bytes (`binaryFile` content), with
  * FFmpeg through the JavaCPP presets. Headerless `.raw`/`.pcm` files are read as 16-bit little-endian
  * 16 kHz mono PCM, as the Python reader does.
  *
  * The steps are the Python reader's (`sparkasr.audio`): integer PCM scaled by 1/2^15 (1/2^31 for
  * 24/32-bit), the channels averaged, then resampled ([[Resampler]]) when the rate is not 16 kHz.
  * 16-kHz lossless PCM therefore gives exactly the Python reader's samples. Errors are [[AudioError]]s
  * whose messages say why (empty, truncated, not audio, no audio stream, NaN/inf). */
object AudioDecoder {
  private val RawExtensions = Seq(".raw", ".pcm")

  def isRawName(name: String): Boolean = name != null && RawExtensions.exists(name.toLowerCase.endsWith)

  /** Decode encoded bytes; `name` (the file, for messages and the .raw rule) may be empty. */
  def decodeBytes(data: Array[Byte], name: String = ""): Array[Float] = {
    if (data == null || data.isEmpty) throw new AudioError("empty file (0 bytes)")
    Truncation.check(new Truncation.ArrayBytes(data)).foreach(m => throw new AudioError(m))
    decode(Left(data), name)
  }

  /** Decode a local file (a path or a `file:` URI). */
  def decodePath(path: String): Array[Float] = {
    val local = localPath(path)
    val f = new File(local)
    if (!f.exists()) throw new AudioError("file not found")
    if (f.isDirectory) throw new AudioError("is a directory, not an audio file")
    if (f.length() == 0) throw new AudioError("empty file (0 bytes)")
    val raf = new RandomAccessFile(f, "r")
    try Truncation.check(new Truncation.FileBytes(raf)).foreach(m => throw new AudioError(m))
    finally raf.close()
    decode(Right(local), local)
  }

  /** Samples `[start, start + length)` of [[decodePath]] (16 kHz indices): the file is decoded and cut,
    * so the slice has exactly the samples of the whole-file decode. */
  def decodeSlice(path: String, start: Int, length: Int): Array[Float] = {
    if (start < 0 || length <= 0) throw new AudioError(s"invalid slice: start $start, length $length samples")
    val all = decodePath(path)
    val end = math.min(all.length.toLong, start.toLong + length).toInt
    val got = math.max(0, end - start)
    if (got < length - SampleRate / 1000)
      throw new AudioError(
        f"the file ends before the slice [${start.toDouble / SampleRate}%.3f, ${(start.toDouble + length) / SampleRate}%.3f) s does " +
          s"($got of its $length samples decoded): did it change since the slice was planned?")
    if (got == 0) Array.emptyFloatArray else java.util.Arrays.copyOfRange(all, start, end)
  }

  /** A `file:` URI or a plain path -> the local path. */
  def localPath(p: String): String = {
    val s =
      if (p.startsWith("file://")) p.substring("file://".length)
      else if (p.startsWith("file:")) p.substring("file:".length)
      else p
    if (s ne p) java.net.URLDecoder.decode(s.replace("+", "%2B"), "UTF-8") else s
  }

  // -- in-memory input: one static read/seek callback pair, the source found by the context's address
  // (JavaCPP callbacks are native thunks: few, long-lived instances, as JavaCV does it)

  private final class Source(val data: Array[Byte]) { var pos = 0 }
  private val sources = new ConcurrentHashMap[java.lang.Long, Source]()

  private object ReadCallback extends Read_packet_Pointer_BytePointer_int {
    override def call(opaque: Pointer, buf: BytePointer, size: Int): Int = {
      val src = sources.get(opaque.address())
      if (src == null) return AVERROR_EOF
      val n = math.min(size, src.data.length - src.pos)
      if (n <= 0) return AVERROR_EOF
      buf.position(0).put(src.data, src.pos, n)
      src.pos += n
      n
    }
  }

  private object SeekCallback extends Seek_Pointer_long_int {
    override def call(opaque: Pointer, offset: Long, whence: Int): Long = {
      val src = sources.get(opaque.address())
      if (src == null) return -1L
      val w = whence & ~AVSEEK_FORCE
      if (w == AVSEEK_SIZE) return src.data.length.toLong
      val target = w match {
        case 0 => offset
        case 1 => src.pos + offset
        case 2 => src.data.length + offset
        case _ => -1L
      }
      if (target < 0 || target > src.data.length) -1L else { src.pos = target.toInt; target }
    }
  }

  private val IoBufferSize = 1 << 16

  private def decode(input: Either[Array[Byte], String], name: String): Array[Float] = {
    FFmpeg.init()
    var ctx = avformat_alloc_context()
    var avio: AVIOContext = null
    val key: java.lang.Long = ctx.address()
    input match {
      case Left(bytes) =>
        sources.put(key, new Source(bytes))
        val buffer = new BytePointer(av_malloc(IoBufferSize.toLong))
        avio = avio_alloc_context(buffer, IoBufferSize, 0, ctx, ReadCallback, null, SeekCallback)
        ctx.pb(avio)
      case Right(_) =>
    }
    val raw = isRawName(name)
    val options = new AVDictionary(null)
    if (raw) {
      av_dict_set(options, "sample_rate", SampleRate.toString, 0)
      av_dict_set(options, "ch_layout", "mono", 0)
    }
    val fmt = if (raw) av_find_input_format("s16le") else null
    try {
      val url: String = input.fold(_ => null, identity)
      val opened = avformat_open_input(ctx, url, fmt, options)
      if (opened < 0) {
        ctx = null // freed by FFmpeg on failure
        throw new AudioError(s"not a decodable audio file (${FFmpeg.errorText(opened)})")
      }
      val info = avformat_find_stream_info(ctx, null.asInstanceOf[org.bytedeco.javacpp.PointerPointer[_ <: Pointer]])
      if (info < 0) throw new AudioError(s"not a decodable audio file (${FFmpeg.errorText(info)})")
      val idx = av_find_best_stream(ctx, AVMEDIA_TYPE_AUDIO, -1, -1, null.asInstanceOf[org.bytedeco.ffmpeg.avcodec.AVCodec], 0)
      if (idx < 0) throw new AudioError("file has no audio stream")
      decodeStream(ctx, idx)
    } finally {
      av_dict_free(options)
      if (ctx != null) avformat_close_input(ctx)
      if (avio != null) {
        av_free(avio.buffer())
        avio_context_free(avio)
      }
      sources.remove(key)
    }
  }

  private def decodeStream(ctx: AVFormatContext, idx: Int): Array[Float] = {
    val par = ctx.streams(idx).codecpar()
    val codec = avcodec_find_decoder(par.codec_id())
    if (codec == null || codec.isNull) throw new AudioError(s"no decoder for the audio codec (id ${par.codec_id()})")
    val cc: AVCodecContext = avcodec_alloc_context3(codec)
    val pkt: AVPacket = av_packet_alloc()
    val frame: AVFrame = av_frame_alloc()
    val out = new Collector
    try {
      var rc = avcodec_parameters_to_context(cc, par)
      if (rc >= 0) rc = avcodec_open2(cc, codec, null.asInstanceOf[AVDictionary])
      if (rc < 0) throw new AudioError(s"cannot open the audio decoder (${FFmpeg.errorText(rc)})")
      var more = true
      while (more) {
        rc = av_read_frame(ctx, pkt)
        if (rc < 0) more = false
        else {
          if (pkt.stream_index() == idx) {
            val sent = avcodec_send_packet(cc, pkt)
            // a damaged packet is skipped (as the ffmpeg tool does); anything else ends the decode
            if (sent < 0 && sent != AVERROR_INVALIDDATA())
              throw new AudioError(f"decoding failed after ${out.seconds}%.2f s (${FFmpeg.errorText(sent)})")
            receive(cc, frame, out)
          }
          av_packet_unref(pkt)
        }
      }
      avcodec_send_packet(cc, null.asInstanceOf[AVPacket])
      receive(cc, frame, out)
      out.result()
    } finally {
      av_frame_free(frame)
      av_packet_free(pkt)
      avcodec_free_context(cc)
      out.close()
    }
  }

  private def receive(cc: AVCodecContext, frame: AVFrame, out: Collector): Unit = {
    var go = true
    while (go) {
      val rc = avcodec_receive_frame(cc, frame)
      if (rc == 0) { out.add(frame); av_frame_unref(frame) }
      else if (rc == AVERROR_EOF || rc == -11 /* AVERROR(EAGAIN) on Linux */) go = false
      else throw new AudioError(f"decoding failed after ${out.seconds}%.2f s (${FFmpeg.errorText(rc)})")
    }
  }

  /** Frames -> float, channel mean, resampled to 16 kHz (restarted when the rate changes mid-stream). */
  private final class Collector extends AutoCloseable {
    private val parts = ArrayBuffer.empty[Array[Float]]
    private var resampler: Resampler = null
    private var rate = -1
    private var native = 0L // native frames seen

    def seconds: Double = if (rate > 0) native.toDouble / rate else 0.0

    def add(frame: AVFrame): Unit = {
      val n = frame.nb_samples()
      val ch = math.max(frame.ch_layout().nb_channels(), 1)
      val r = frame.sample_rate()
      if (r != rate) {
        if (resampler != null) { parts += resampler.flush(); resampler.close(); resampler = null }
        rate = r
        if (r <= 0) throw new AudioError(s"invalid sample rate $r")
        if (r != SampleRate) resampler = new Resampler(r)
      }
      val mono = toMonoFloat(frame, n, ch)
      native += n
      parts += (if (resampler == null) mono else resampler.push(mono, 0, mono.length))
    }

    def result(): Array[Float] = {
      if (resampler != null) parts += resampler.flush()
      Audio.concat(parts.toSeq)
    }

    override def close(): Unit = if (resampler != null) { resampler.close(); resampler = null }
  }

  /** One frame's samples as float (libsndfile's scaling), checked finite, averaged over channels. */
  private def toMonoFloat(frame: AVFrame, n: Int, ch: Int): Array[Float] = {
    val fmt = frame.format()
    val planar = av_sample_fmt_is_planar(fmt) == 1
    val bps = av_get_bytes_per_sample(fmt)
    val out = new Array[Float](n)
    def buffer(plane: Int, count: Int) =
      new BytePointer(frame.extended_data(plane)).capacity(count.toLong * bps).asByteBuffer().order(ByteOrder.nativeOrder())
    val planes = if (planar) Array.tabulate(ch)(c => buffer(c, n)) else Array(buffer(0, n * ch))
    def sample(c: Int, i: Int): Float = {
      val (b, j) = if (planar) (planes(c), i) else (planes(0), i * ch + c)
      val v = fmt match {
        case AV_SAMPLE_FMT_U8 | AV_SAMPLE_FMT_U8P => ((b.get(j) & 0xff) - 128).toFloat * (1.0f / 128)
        case AV_SAMPLE_FMT_S16 | AV_SAMPLE_FMT_S16P => b.getShort(j * 2).toFloat * (1.0f / 32768)
        case AV_SAMPLE_FMT_S32 | AV_SAMPLE_FMT_S32P => b.getInt(j * 4).toFloat * (1.0f / 2147483648.0f)
        case AV_SAMPLE_FMT_FLT | AV_SAMPLE_FMT_FLTP => b.getFloat(j * 4)
        case AV_SAMPLE_FMT_DBL | AV_SAMPLE_FMT_DBLP => b.getDouble(j * 8).toFloat
        case AV_SAMPLE_FMT_S64 | AV_SAMPLE_FMT_S64P => (b.getLong(j * 8).toDouble / 9.223372036854775808e18).toFloat
        case other => throw new AudioError(s"unsupported sample format ${av_get_sample_fmt_name(other).getString}")
      }
      if (v.isNaN || v.isInfinite) throw new AudioError("audio contains NaN or infinite samples")
      v
    }
    var i = 0
    while (i < n) {
      var s = sample(0, i)
      var c = 1
      while (c < ch) { s += sample(c, i); c += 1 }
      out(i) = if (ch == 1) s else s / ch
      i += 1
    }
    out
  }
}
