"""The providers' error codes the simulator answers with, their usual messages and HTTP statuses."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class CarrierError(Exception):
    """An error the simulated carrier answers with, rendered by ``response()`` in the provider's own
    format. Not a Nudge error: it is the fake provider's side of the wire (Nudge's adapters turn the
    response into ``nudge.errors.ProviderError``), so it stays out of Nudge's hierarchy."""

    def response(self) -> JSONResponse:
        raise NotImplementedError


ALIYUN_MESSAGES: dict[str, str] = {
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.BUSINESS_LIMIT_CONTROL": "触发分钟级流控Permits:1",
    "isv.DAY_LIMIT_CONTROL": "触发日发送限额",
    "isv.MONTH_LIMIT_CONTROL": "触发月发送限额",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.INVALID_PARAMETERS": "参数异常",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板缺少变量",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "模板变量里包含非法关键字",
    "isv.BLACK_KEY_CONTROL_LIMIT": "黑名单管控",
    "isv.OUT_OF_SERVICE": "业务停机",
    "isv.CUSTOMER_REFUSED": "用户已退订推广短信",
    "isp.SYSTEM_ERROR": "请重试接口调用，如仍存在此情况请创建工单反馈工程师查看。",
    "Throttling.User": "Request was denied due to user flow control.",
    "Throttling.Api": "Request was denied due to api flow control.",
}


def aliyun_http_status(code: str) -> int:
    """Business rejections come back as HTTP 200; flow control as 400, platform errors as 500."""
    if code.startswith("Throttling"):
        return 400
    if code.startswith("isp."):
        return 500
    return 200


TWILIO_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: (
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
    ),
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number via SMS.",
    21614: "'To' number is not a valid mobile number",
    30001: "Queue overflow",
}


def twilio_http_status(code: int) -> int:
    return {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}.get(code, 400)


TENCENT_MESSAGES: dict[str, str] = {
    "AuthFailure.SecretIdNotFound": "密钥不存在，请在控制台检查密钥是否已被删除或者禁用。",
    "AuthFailure.SignatureFailure": "签名错误。请对照调用方式中的签名方法文档检查签名计算过程。",
    "AuthFailure.SignatureExpire": "签名过期。Timestamp 和服务器时间相差不得超过五分钟。",
    "AuthFailure.InvalidAuthorization": "请求头部的 Authorization 不符合腾讯云标准。",
    "RequestLimitExceeded": "请求的次数超过了频率限制。",
    "InternalError": "内部错误。",
    "FailedOperation.InsufficientBalanceInSmsPackage": "套餐包余量不足，请购买套餐包。",
    "FailedOperation.PhoneNumberInBlacklist": (
        "手机号在免打扰名单库中，免打扰名单一般是用户主动要求或者屡次投诉的号码。"
    ),
    "FailedOperation.MarketingSendTimeConstraint": (
        "营销短信发送时间限制，为避免骚扰用户，营销短信只允许在8点到22点发送。"
    ),
    "FailedOperation.SignatureIncorrectOrUnapproved": "签名未审批或格式错误。",
    "FailedOperation.TemplateIncorrectOrUnapproved": "模板未审批或请求的内容与审核通过的模板内容不匹配。",
    "FailedOperation.JsonParseFail": "解析请求包体时候失败。",
    "InvalidParameterValue.IncorrectPhoneNumber": "手机号格式错误。",
    "InvalidParameterValue.TemplateParameterFormatError": "模板参数个数与模板变量个数不一致。",
    "LimitExceeded.PhoneNumberCountLimit": "调用接口单次提交的手机号个数超过200个。",
    "LimitExceeded.PhoneNumberOneHourLimit": "单个手机号1小时内下发短信条数超过设定的上限。",
    "LimitExceeded.PhoneNumberDailyLimit": "单个手机号日下发短信条数超过设定的上限。",
    "LimitExceeded.PhoneNumberThirtySecondLimit": "单个手机号30秒内下发短信条数超过设定的上限。",
    "LimitExceeded.PhoneNumberSameContentDailyLimit": "单个手机号下发相同内容超过设定的上限。",
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": (
        "SmsSdkAppId 校验失败，请检查 SmsSdkAppId 是否属于云API密钥的关联账户。"
    ),
    "InvalidAction": "接口不存在。",
    "NoSuchVersion": "接口版本不存在。",
    "MissingParameter": "缺少参数错误。",
    "InvalidParameter": "参数错误。",
}


_TENCENT_PER_NUMBER = frozenset(
    {
        "FailedOperation.PhoneNumberInBlacklist",
        "InvalidParameterValue.IncorrectPhoneNumber",
        "FailedOperation.MarketingSendTimeConstraint",
    }
)


def tencent_per_number(code: str) -> bool:
    """Codes Tencent reports per number inside ``SendStatusSet`` rather than for the request."""
    if code in _TENCENT_PER_NUMBER:
        return True
    return code.startswith("LimitExceeded.PhoneNumber") and code != "LimitExceeded.PhoneNumberCountLimit"
